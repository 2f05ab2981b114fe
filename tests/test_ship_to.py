"""Ship-to: an order ships only to its certificate's registered location.

The certificate's postal address extension against the order's purchaser address,
under ``[verification] ship_to_match`` and ``ship_to_required``; the outcome goes into
the decision's evidence.
"""

from __future__ import annotations

import json

import pytest

from connectors.dea_ext import ADDRESS_OID, decode_address, encode_address, read_extensions
from connectors.postal import normalize_address, same_address
from connectors.signing import sign_cms, sign_json_envelope
from engine.records import Rejected, RejectReason
from engine.verify import Verifier
from tests import csos_support as cs
from tests.test_openssl import openssl_sign


def _purchaser(address: str | None) -> dict:
    party = {"dea_number": cs.PURCHASER, "name": "Main St Pharmacy"}
    return party if address is None else {**party, "address": address}


def _verify(raw: bytes, **changes):
    return Verifier(cs.settings(**changes), cs.catalog()).verify(raw)


def _signed(order_address: str | None, cert_address: str | None = cs.ADDRESS) -> bytes:
    who = cs.signer(address=cert_address)
    return sign_cms(cs.payload(purchaser=_purchaser(order_address)), who)


@pytest.mark.parametrize(
    "written",
    [
        "1 Main St, Springfield, IL 62701",
        "1 MAIN STREET, SPRINGFIELD, IL 62701",
        "1 Main St.  Springfield IL 62701-4410",
        "1 Main Street, Springfield, Illinois 62701",  # the state written out
    ],
)
def test_the_registered_location_written_another_way_ships(written):
    assert _verify(_signed(written)).ship_to == "matched"


@pytest.mark.parametrize(
    "elsewhere",
    [
        "2 Main St, Springfield, IL 62701",  # next door
        "1 Main St, Suite 4, Springfield, IL 62701",  # another unit at the address
        "1 Main St, Springfield, IL 62702",  # another ZIP code
    ],
)
def test_any_other_location_is_rejected_naming_both_addresses(elsewhere):
    with pytest.raises(Rejected) as exc:
        _verify(_signed(elsewhere))
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH
    assert elsewhere in exc.value.detail and cs.ADDRESS in exc.value.detail
    assert "rule normalized" in exc.value.detail
    assert (exc.value.order_number, exc.value.purchaser_dea) == ("25X00A123", cs.PURCHASER)


def test_exact_rule_compares_the_strings():
    raw = _signed("1 MAIN ST, SPRINGFIELD, IL 62701")
    assert _verify(raw).ship_to == "matched"
    with pytest.raises(Rejected) as exc:
        _verify(raw, ship_to_match="exact")
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH
    assert _verify(_signed(cs.ADDRESS), ship_to_match="exact").ship_to == "matched"


def test_off_ships_anywhere_and_says_it_was_not_checked():
    assert _verify(_signed("2 Elm St"), ship_to_match="off").ship_to == "not_checked"


def test_certificate_without_an_address():
    raw = _signed("2 Elm St", cert_address=None)
    assert _verify(raw).ship_to == "not_in_certificate"
    with pytest.raises(Rejected) as exc:
        _verify(raw, ship_to_required=True)
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH
    assert "ship_to_required" in exc.value.detail and "2.16.840.1.101.3.5.6" in exc.value.detail


def test_order_without_an_address_ships_to_the_registered_one():
    assert _verify(_signed(None)).ship_to == "not_stated"
    assert _verify(_signed("  ")).ship_to == "not_stated"


def test_json_envelope_is_checked_the_same_way():
    env = sign_json_envelope(cs.payload(purchaser=_purchaser("2 Elm St")), cs.signer())
    with pytest.raises(Rejected) as exc:
        _verify(json.dumps(env).encode())
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH


def test_paper_orders_have_no_certificate_to_check():
    raw = cs.payload(form="dea222", form_number="123456789", purchaser=_purchaser("2 Elm St"))
    assert _verify(raw).ship_to is None


def test_openssl_signed_orders(tmp_path):
    who = cs.signer()
    good = openssl_sign(
        tmp_path, cs.payload(purchaser=_purchaser("1 Main Street, Springfield, IL 62701")), who
    )
    assert _verify(good).ship_to == "matched"
    bad = openssl_sign(tmp_path, cs.payload(purchaser=_purchaser("9 Depot Rd, Columbus, OH")), who)
    with pytest.raises(Rejected) as exc:
        _verify(bad)
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH


def test_the_extension_round_trips_long_addresses():
    long = "1 Main St, Building 7, Loading Dock C, Attn Receiving, " * 4 + "Springfield, IL 62701"
    assert len(long.encode()) > 127  # a long-form DER length
    assert decode_address(encode_address(long)) == long.strip()
    who = cs.signer(address=long)
    assert read_extensions(who.cert).address == long.strip()
    assert read_extensions(cs.signer(address=None).cert).address is None


def _lines(*lines: str) -> bytes:
    from asn1crypto import core
    from asn1crypto import x509 as ax

    class Lines(core.SequenceOf):
        _child_spec = ax.DirectoryString

    return Lines([ax.DirectoryString(name="utf8_string", value=x) for x in lines]).dump()


def test_a_postal_address_of_several_lines_is_read_line_by_line():
    der = _lines("1 Main St", "Springfield, IL 62701")
    assert decode_address(der) == "1 Main St, Springfield, IL 62701"
    assert decode_address(b"\x1e\x04\x00h\x00i") == "hi"  # BMPString


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x0c",
        b"\x04\x02ab",  # empty, no length, an OCTET STRING
        b"\x0c\x05abc",
        b"\x0c\x03abcX",  # lengths that do not fit
        b"\x0c\x02\xff\xfe",  # not UTF-8
        b"\x0c\x03\x20\x20\x20",  # blank: no location
        b"\x0c\x03a\x00b",  # a control character
    ],
)
def test_unreadable_extension_values_read_as_none(der):
    assert decode_address(der) is None


def _with_raw_address(der: bytes):
    """A purchaser certificate whose address extension holds ``der`` as it is."""
    from cryptography import x509

    extension = x509.UnrecognizedExtension(ADDRESS_OID, der)
    return cs.pki().issue_registrant(
        cs.PURCHASER, "Main St Pharmacy", ["2", "2N", "4"], cs.T0, cs.T1, extra=(extension,)
    )


def test_an_unreadable_extension_is_said_so_never_taken_for_a_location():
    who = _with_raw_address(b"\x04\x02ab")
    raw = sign_cms(cs.payload(purchaser=_purchaser("2 Elm St")), who)
    assert _verify(raw).ship_to == "unreadable"
    with pytest.raises(Rejected) as exc:
        _verify(raw, ship_to_required=True)
    assert exc.value.reason is RejectReason.SHIP_TO_MISMATCH
    assert "cannot read" in exc.value.detail
    lines = _with_raw_address(_lines("1 Main Street", "Springfield IL 62701"))
    assert _verify(sign_cms(cs.payload(), lines)).ship_to == "matched"


def test_accents_are_dropped_but_letters_are_not():
    assert same_address("1 Calle Peña, Ponce, PR 00716", "1 CALLE PENA, PONCE, PR 00716")
    assert not same_address("1 Élm St, Ponce, PR 00716", "1 Ülm St, Ponce, PR 00716")
    assert normalize_address("Ävenue") != normalize_address("Venue")


def test_states_written_out_where_the_address_ends():
    assert normalize_address("5 Elm St, Raleigh, North Carolina 27601-1234") == (
        "5 ELM ST RALEIGH NC 27601"
    )
    assert normalize_address("5 Elm St, Charleston, West Virginia") == "5 ELM ST CHARLESTON WV"
    assert normalize_address("9 Washington St, Boston, MA") == "9 WASHINGTON ST BOSTON MA"
    assert not same_address("5 Elm St, Raleigh, North Carolina", "5 Elm St, Raleigh, SC")


def test_normalisation_keeps_what_tells_locations_apart():
    assert normalize_address("10 North Oak Avenue, Apt 3") == "10 N OAK AVE APT 3"
    assert not same_address("100 North St", "100 N St")  # North Street is not N Street
    assert not same_address("5 E St", "5 East St")
    assert same_address("5 Main St North", "5 Main St N")
    assert not same_address("10 N Oak Ave Apt 3", "10 N Oak Ave Apt 4")
    assert not same_address("10 Oak Ave", "100 Oak Ave")
    with pytest.raises(ValueError):
        same_address("a", "a", "fuzzy")
