"""One file per self-supervised method: MoCo-v2, SwAV, DINO."""

from passkit.ssl.methods.base import SSLMethod
from passkit.ssl.methods.dino import DINO
from passkit.ssl.methods.mocov2 import MoCoV2
from passkit.ssl.methods.swav import SwAV

METHODS = {"mocov2": MoCoV2, "swav": SwAV, "dino": DINO}

__all__ = ["DINO", "METHODS", "MoCoV2", "SSLMethod", "SwAV"]
