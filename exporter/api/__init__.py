"""HTTP adapter: wire schemas, decoding and routes. Thin: no statistics here."""
