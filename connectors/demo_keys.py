"""Reproducible demo keys: RSA and EC private keys derived from an integer seed.

Synthetic feeds, demos and tests want the same PKI for the same seed, and
``cryptography`` cannot seed its key generator. So demo keys are built from a
seeded PRNG here: primes by Miller-Rabin, then ``RSAPrivateNumbers``. This is a
**synthetic-data shortcut**: such keys are predictable from the seed and must
never sign real orders. Every signature made with them is still checked by
``cryptography``.

>>> a, b = demo_rsa_key(7, bits=1024), demo_rsa_key(7, bits=1024)
>>> a.private_numbers() == b.private_numbers(), a.key_size
(True, 1024)
>>> demo_ec_key(7).private_numbers() == demo_ec_key(7).private_numbers()
True
"""

from __future__ import annotations

import hashlib
import math
import random
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric import ec, rsa

__all__ = ["demo_rsa_key", "demo_ec_key", "key_pool"]

_SMALL_PRIMES = [p for p in range(3, 2000) if all(p % q for q in range(2, int(p**0.5) + 1))]
_SMALL_PRODUCT = math.prod(_SMALL_PRIMES)


def _probable_prime(n: int, rng: random.Random, rounds: int = 6) -> bool:
    if math.gcd(n, _SMALL_PRODUCT) != 1:
        return n in _SMALL_PRIMES
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(bits: int, rng: random.Random, e: int) -> int:
    while True:
        n = rng.getrandbits(bits) | (3 << (bits - 2)) | 1
        if (n - 1) % e and _probable_prime(n, rng):
            return n


def _rng(seed: int, label: str) -> random.Random:
    return random.Random(hashlib.sha256(f"som-demo-key:{label}:{seed}".encode()).digest())


@lru_cache(maxsize=256)
def demo_rsa_key(seed: int, bits: int = 2048, label: str = "rsa") -> rsa.RSAPrivateKey:
    """The RSA key for ``(seed, bits, label)``; the same arguments give the same key."""
    rng, e = _rng(seed, f"{label}:{bits}"), 65537
    while True:
        p, q = _prime(bits // 2, rng, e), _prime(bits - bits // 2, rng, e)
        if p != q and (p * q).bit_length() == bits:
            break
    p, q = max(p, q), min(p, q)
    d = pow(e, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e, p * q),
    )
    return numbers.private_key()


def demo_ec_key(seed: int, label: str = "ec") -> ec.EllipticCurvePrivateKey:
    """A P-256 key for ``(seed, label)``, derived from a hash of both."""
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    digest = hashlib.sha256(f"som-demo-key:{label}:{seed}".encode()).digest()
    return ec.derive_private_key(int.from_bytes(digest) % (order - 1) + 1, ec.SECP256R1())


def key_pool(n: int, seed: int = 0) -> list[rsa.RSAPrivateKey]:
    """``n`` RSA-2048 keys for synthetic registrants.

    Generating one RSA-2048 key costs 50 ms or more, so synthetic feeds give
    hundreds of registrant certificates keys from a small pool. Real
    registrants each hold their own key; this is a synthetic-data shortcut.
    """
    return [demo_rsa_key(seed * 1_000_003 + i, 2048, "pool") for i in range(n)]
