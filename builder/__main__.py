"""``python -m builder``. It runs with the pinned numerical kernels (builder.kernels: re-executed before numpy
loads, so the registry's bytes are the same on any CPU). Its commands need the builder extra (numpy, scipy,
click, …), which a plain ``pip install optsteps`` does not install: say so instead of a traceback, as the
``optsteps`` command does."""

import sys

from .kernels import pin_this_process

pin_this_process(["-m", __package__, *sys.argv[1:]])  # builder, or optsteps_builder installed

try:
    from .cli import main
except ModuleNotFoundError as err:
    if err.name not in ("click", "numpy", "scipy", "tqdm", "jsonschema", "threadpoolctl"):
        raise
    sys.stderr.write(f"python -m builder needs {err.name}: pip install 'optsteps[builder]'\n")
    raise SystemExit(2) from None

main()
