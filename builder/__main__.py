import sys

from builder.kernels import pin_this_process

pin_this_process(["-m", "builder", *sys.argv[1:]])  # before numpy loads: the registry's bytes, on any CPU

from builder.cli import main  # noqa: E402

main()
