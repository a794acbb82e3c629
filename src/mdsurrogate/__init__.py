"""mdsurrogate: learn molecular dynamics of soft materials.

Pipeline stages (one sub-package each): simulation -> campaign -> dataset -> surrogate -> evaluation
-> analysis; proxima (on-the-fly control), app, cli.
"""

__version__ = "0.1.0"
