"""The method's constants, one place, each naming the METHOD.md section that states it.

Values equal nnU-Net v2 2.8.1's; changing one changes the method, so the tests derive expectations from
these names rather than repeating the numbers.
"""

# --- Fingerprint (METHOD.md 2) ---
# Total foreground intensity samples per channel for the whole dataset, split evenly over cases.
FINGERPRINT_TOTAL_FOREGROUND_SAMPLES = 10e7
# Seed of the per-case foreground intensity sampler (same seed for every case).
FINGERPRINT_SAMPLING_SEED = 1234
