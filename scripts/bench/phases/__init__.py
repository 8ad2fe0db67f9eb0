"""The benchmark's phases, one module each, in the order `scripts.bench.run` runs them:
http_ceiling (1, 1a, 1d, 1c, 1b, 1e), intake (2), tokens (2t, 7t), storage (3, 3b), naive
(4), finalisation (5), flash_sale (6), sold_out (7), memory (8)."""
