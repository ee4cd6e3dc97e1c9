"""Importers of weights trained elsewhere (NVlabs/SPADE PyTorch checkpoints)."""

from spade_tf.convert.nvlabs import (
    ImportedNetworks, StateDictMismatchError, find_checkpoint_files, import_checkpoint,
    import_discriminator, import_encoder, import_generator, load_state_dict,
    write_training_checkpoint,
)

__all__ = [
    "ImportedNetworks", "StateDictMismatchError", "find_checkpoint_files", "import_checkpoint",
    "import_discriminator", "import_encoder", "import_generator", "load_state_dict",
    "write_training_checkpoint",
]
