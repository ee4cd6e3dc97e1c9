"""Importers of weights trained elsewhere (NVlabs/SPADE PyTorch checkpoints).

``torch_io`` reads the official checkpoint files, ``key_map`` fills Keras
variables from a state dict by a key map, and ``nvlabs`` holds the SPADE
networks' key maps and importers built on both (CLADE's and SEAN's too).
"""

from spade_tf.convert.key_map import KeyMap, StateDictMismatchError, assign_state_dict
from spade_tf.convert.nvlabs import (
    ImportedNetworks,
    import_checkpoint,
    import_discriminator,
    import_encoder,
    import_generator,
    import_style_encoder,
    write_training_checkpoint,
)
from spade_tf.convert.torch_io import find_checkpoint_files, load_state_dict

__all__ = [
    "ImportedNetworks", "KeyMap", "StateDictMismatchError", "assign_state_dict", "find_checkpoint_files",
    "import_checkpoint", "import_discriminator", "import_encoder", "import_generator",
    "import_style_encoder", "load_state_dict", "write_training_checkpoint",
]
