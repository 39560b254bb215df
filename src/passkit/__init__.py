"""passkit: build people-free, CC-BY, fully attributed image datasets (the PASS system) and pretrain on them."""

__version__ = "0.1.0"
