import sys

from mnist_hub.cli import main

sys.exit(main())
