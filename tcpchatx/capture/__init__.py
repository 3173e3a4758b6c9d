"""Capture the lab's TCP traffic on loopback into pcapng files.

Three ways to get a capture, chosen by :func:`choose_capture_mode`:

* ``live``: :class:`LiveCapture` records a port on this machine's loopback interface
  (needs capture permission: root, the ``wireshark`` group or dumpcap's capabilities);
* ``rootless``: :func:`run_rootless` runs the traffic and the capture inside a private
  Linux user+network namespace, where an ordinary user may capture; and
  :class:`NamespaceSockets` makes your own sockets in such a namespace and captures them;
* ``reference``: read the captures shipped in ``captures/``.

See docs/capture.md for installing capture support on Linux, macOS and Windows.
"""

from .errors import CaptureError, CapturePermissionError, RootlessUnavailableError
from .interfaces import loopback_interface
from .live import CaptureResult, LiveCapture, live_capture_available
from .mode import CaptureModeCheck, check_capture_mode, choose_capture_mode
from .namespace_sockets import NamespaceSockets, NamespaceSocketsError
from .rootless import RootlessResult, rootless_available, run_rootless

__all__ = [
    "CaptureError",
    "CaptureModeCheck",
    "CapturePermissionError",
    "CaptureResult",
    "LiveCapture",
    "NamespaceSockets",
    "NamespaceSocketsError",
    "RootlessResult",
    "RootlessUnavailableError",
    "check_capture_mode",
    "choose_capture_mode",
    "live_capture_available",
    "loopback_interface",
    "rootless_available",
    "run_rootless",
]
