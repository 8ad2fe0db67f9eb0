"""The benchmark's phases, one module each, in the order `scripts.bench.run` runs them:
http_ceiling (1, 1a, 1c, 1b), intake (2), storage (3, 3b), naive (4), finalisation (5),
flash_sale (6), sold_out (7), memory (8)."""
