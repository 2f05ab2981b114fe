"""Everything that touches the outside: orders, envelopes, PKI, catalog, files, broker."""
