# Stand-in for the get-pip.py bootstrap script that ansible-test downloads from
# the internet (which this workplace cannot reach). ansible-test runs it inside a
# new virtualenv with pip options and packages as arguments (for example
# "--disable-pip-version-check pip==24.2 --no-setuptools --no-wheel"); like
# get-pip.py, we run "pip install" with them, taking pip itself from the wheel
# that tests/bin/bootstrap.sh downloads from PyPI next to this file.
import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
# get_pip_24_2.py -> pip-24.2-*.whl
version = os.path.basename(__file__)[len('get_pip_'):-len('.py')].replace('_', '.')
wheels = sorted(glob.glob(os.path.join(here, 'pip-%s-*.whl' % version)))
if not wheels:
    sys.exit('get_pip shim: no pip wheel next to %s' % here)
sys.path.insert(0, wheels[-1])

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]

from pip._internal.cli.main import main  # noqa: E402

sys.exit(main(['install', '--upgrade', '--force-reinstall'] + args))
