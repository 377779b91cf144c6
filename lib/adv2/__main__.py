import os
import sys

from adv2.book.cli import main
from adv2.core.config import REPO_ROOT, ROOT_ENV

# the notebooks' kernels and a sweep's Ray workers use the same repository as this command,
# whatever folder they start in
os.environ.setdefault(ROOT_ENV, str(REPO_ROOT))
sys.exit(main())
