import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))

from mmtest import Dovecot  # noqa: E402


@pytest.fixture
def make_dovecot():
    """Factory for private Dovecot instances, all stopped and removed at the
    end of the test."""
    instances = []

    def make(setup=None, **kwargs):
        d = Dovecot(**kwargs)
        instances.append(d)
        if setup is not None:
            setup(d)
        d.start()
        return d

    yield make
    for d in instances:
        d.cleanup()


@pytest.fixture(params=["maildir:~/Maildir", "sdbox:~/sdbox"],
                ids=["maildir", "sdbox"])
def dovecot(request, make_dovecot):
    return make_dovecot(mail_location=request.param)


@pytest.fixture
def maildir_dovecot(make_dovecot):
    return make_dovecot(mail_location="maildir:~/Maildir")
