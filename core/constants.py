"""The method's constants, one place, each naming the METHOD.md section that states it.

Values equal nnU-Net v2 2.8.1's; changing one changes the method, so the tests derive expectations from
these names rather than repeating the numbers.
"""

# --- Fingerprint (METHOD.md 2) ---
# Total foreground intensity samples per channel for the whole dataset, split evenly over cases.
FINGERPRINT_TOTAL_FOREGROUND_SAMPLES = 10e7
# Seed of the per-case foreground intensity sampler (same seed for every case).
FINGERPRINT_SAMPLING_SEED = 1234

# --- Planning (METHOD.md 3) ---
# A spacing axis is anisotropic when it is this many times coarser than the others (3.2); the same
# factor applies to its voxel count.
PLANNING_ANISO_THRESHOLD = 3
# Percentile of the coarse axis' spacings used as its target when the anisotropy rule applies (3.2).
PLANNING_ANISO_TARGET_PERCENTILE = 10
# Added so the anisotropic axis stays the coarsest one after taking that percentile (3.2).
PLANNING_ANISO_SPACING_EPSILON = 1e-5
# Initial patch volume before clipping and shrinking: 256^3 voxels in 3D, 2048^2 pixels in 2D (3.5).
PLANNING_INITIAL_PATCH_EDGE_3D = 256
PLANNING_INITIAL_PATCH_EDGE_2D = 2048
# Minimum edge length of the bottleneck feature maps (`UNet_featuremap_min_edge_length`, 3.1).
PLANNING_FEATUREMAP_MIN_EDGE_LENGTH = 4
# Features of the first stage, doubled per stage up to the cap (3.1).
PLANNING_BASE_FEATURES = 32
PLANNING_MAX_FEATURES_3D = 320
PLANNING_MAX_FEATURES_2D = 512
# Batch sizes that the reference VRAM values were measured with (3.1).
PLANNING_REFERENCE_BATCH_SIZE_3D = 2
PLANNING_REFERENCE_BATCH_SIZE_2D = 12
PLANNING_MIN_BATCH_SIZE = 2
# A 3d_lowres configuration is sought while the fullres patch covers less than this voxel fraction
# of the median image (3.6).
PLANNING_LOWRES_CREATION_THRESHOLD = 0.25
# Per-step growth of the lowres spacing (3.6; nnU-Net v1 used 1.01).
PLANNING_LOWRES_SPACING_INCREASE_FACTOR = 1.03
# Axes finer than the coarsest by more than this factor grow first in the lowres loop (3.6).
PLANNING_LOWRES_ANISOTROPY_FACTOR = 2
# 3d_lowres is dropped unless fullres images have at least this many times its voxels (3.6).
PLANNING_LOWRES_MIN_VOXEL_RATIO = 2
# use_mask_for_norm is considered when cropping kept less than this fraction of the image (3.7).
PLANNING_MASK_FOR_NORM_MAX_CROP_RATIO = 0.75
# Channel name (case-folded) -> normalization scheme; any other name gets the default (4.2).
PLANNING_NORMALIZATION_BY_CHANNEL_NAME = {
    "ct": "CTNormalization",
    "nonorm": "NoNormalization",
    "zscore": "ZScoreNormalization",
    "rescale_to_0_1": "RescaleTo01Normalization",
    "rgb_to_0_1": "RGBTo01Normalization",
}
PLANNING_DEFAULT_NORMALIZATION = "ZScoreNormalization"
# Schemes that leave voxels outside the nonzero mask at 0 and so may use the mask (3.7).
PLANNING_MASKABLE_NORMALIZATIONS = frozenset({"ZScoreNormalization"})

# --- Preprocessing (METHOD.md 4) ---
# Normalization divides by max(std, eps); eps is larger when the target type is float16 (4.2).
NORMALIZATION_EPS = 1e-8
NORMALIZATION_EPS_FLOAT16 = 1e-4
# RGBTo01Normalization accepts intensities in [0, 255] and divides by 255 (4.2).
NORMALIZATION_RGB_MAX = 255.0
# Resample in-plane and across slices separately when the coarsest spacing is more than this many
# times the finest, for the current or else the target spacing (`ANISO_THRESHOLD`, 4.3).
RESAMPLING_SEPARATE_Z_ANISOTROPY_THRESHOLD = 3
# Class locations for foreground oversampling: a fresh RandomState with this seed per case; per class
# max(min(MIN_SAMPLES, voxels), ceil(MIN_COVERAGE * voxels)) voxels drawn without replacement (4.4).
CLASS_LOCATIONS_SEED = 1234
CLASS_LOCATIONS_MIN_SAMPLES = 10000
CLASS_LOCATIONS_MIN_COVERAGE = 0.01
# The preprocessed label map is int8 unless a label exceeds this value, then int16 (4.1, step 8).
SEG_INT8_MAX_LABEL = 127

# --- Training (METHOD.md 5) ---
# SGD with Nesterov momentum; the learning rate decays polynomially, once per epoch (5.1).
TRAINING_INITIAL_LR = 1e-2
TRAINING_SGD_MOMENTUM = 0.99
TRAINING_SGD_NESTEROV = True
TRAINING_WEIGHT_DECAY = 3e-5
TRAINING_POLY_LR_EXPONENT = 0.9
# Soft Dice: added to numerator and denominator; the denominator is clamped at the floor (5.2).
TRAINING_DICE_SMOOTH = 1e-5
TRAINING_DICE_DENOMINATOR_MIN = 1e-8
# Pseudo-Dice moving average: ema = DECAY * previous + (1 - DECAY) * current (5.6).
TRAINING_PSEUDO_DICE_EMA_DECAY = 0.9
# Cross-validation: KFold over the sorted case identifiers with this seed; a fold past the last split
# is a random split keeping this fraction for training, seeded with SPLITS_SEED + fold (5.10).
SPLITS_NUM_FOLDS = 5
SPLITS_SEED = 12345
SPLITS_RANDOM_TRAIN_FRACTION = 0.8

# --- Training loop (METHOD.md 5.1, 5.4, 5.7) ---
TRAINING_EPOCHS = 1000
TRAINING_ITERATIONS_PER_EPOCH = 250
TRAINING_VALIDATION_ITERATIONS = 50
TRAINING_GRADIENT_CLIP_NORM = 12.0
# Sample j of a batch shows foreground iff j >= round(batch_size * (1 - 0.33)) (5.4).
TRAINING_OVERSAMPLE_FOREGROUND = 0.33

# --- Evaluation and selection (METHOD.md 8) ---
# Region mode: a region's label is painted where its sigmoid probability exceeds this (1.2, 8.4).
REGION_PROBABILITY_THRESHOLD = 0.5
# Configurations in the order upstream lists its candidates; a score tie goes to the earlier one, and
# single configurations come before ensembles (8.3).
SELECTION_CONFIGURATION_ORDER = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")
