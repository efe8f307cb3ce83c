"""DHIF-Net and the conversion of the authors' checkpoints."""
from .convert import convert_original_state_dict, load_original_checkpoint
from .dhif_net import DHIFNet, FilterUNet, spatial_factors

__all__ = ["DHIFNet", "FilterUNet", "spatial_factors", "convert_original_state_dict", "load_original_checkpoint"]
