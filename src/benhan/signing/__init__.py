"""Signed records: keys and certificates, document signatures, Provenance, signed PDF."""
