"""What limits a transfer: the network (cwnd), the receiver (rwnd) or the application
(``limits``)."""

from __future__ import annotations

from ..impair import bottleneck as limit_rate
from ..play import bulk_transfer, views
from ..relay import Relay
from ..topology import SERVER
from .common import StoryError, set_sysctl

LIMITS = ("cwnd", "rwnd", "app")


def limits(out_dir: str, size: int = 150_000, delay_ms: float = 20, rate: str = "4mbit",
           receive_buffer: int = 16_384, router_view: bool = False) -> dict:
    """The same kind of transfer three times across a path of ``delay_ms`` each way, each
    held back by something else:

    - ``rwnd``: the receiver's buffer is small (``receive_buffer``, in the server's
      namespace), so the sender may only have that much unacknowledged: at most one
      window per round trip, however fast the link;
    - ``app``: the sender has little to say (1,448 bytes every 20 ms): the window is
      never full, nothing waits in its queue;
    - ``cwnd``: a link of ``rate`` with a small queue: the congestion window, which
      losses keep cutting, decides.

    Linux measures which, for every socket (TCP_INFO, since 4.10): ``busy_time`` (time
    with data in flight), and within it ``rwnd_limited`` (stalled on the receive
    window) and ``sndbuf_limited`` (on the send buffer); busy and neither is limited by
    cwnd.  A paced sender is "busy" too (it always has a chunk in flight), but each
    ACK that finds it with nothing more to send marks its rate sample *app-limited*
    (TCP_INFO's ``flags`` bit 0): most samples so marked, the application decides.
    A window-bound sender is not stalled all the time either: Linux paces the segments
    of each window (a few ms apart), and counts that as busy - so the rule is a fifth
    of the time or more stalled on the receive window (or the send buffer), and the
    rwnd run shows about half.  Each run returns those, in seconds, and its verdict
    (``limited_by``).
    """
    each_way = {"delay_ms": delay_ms}
    script = {"to_server": each_way, "to_client": each_way}
    runs = {}
    with open("/proc/sys/net/ipv4/tcp_rmem") as default:  # the router's; the namespaces start alike
        default_rmem = default.read().strip()
    for limit in ("rwnd", "app", "cwnd"):  # the rate limit stays once set: cwnd last
        paths = views(out_dir, f"limits-{limit}", router_view)
        pace = (1448, 0.02) if limit == "app" else None
        if limit == "rwnd":
            set_sysctl(SERVER.namespace, "tcp_rmem", f"4096 {receive_buffer} {receive_buffer}")
        if limit == "cwnd":
            limit_rate(towards=SERVER, rate=rate, buffer_bytes=30_000)
        with Relay(script) as relay:
            run = bulk_transfer(paths, size if limit != "app" else size // 8, pace=pace)
        set_sysctl(SERVER.namespace, "tcp_rmem", default_rmem)
        run.update(relay=relay.final, limit=limit, **_measured(run))
        if run["limited_by"] != limit:
            for path in paths.values():
                path.unlink(missing_ok=True)
            raise StoryError(f"the {limit}-limited transfer looked limited by {run['limited_by']}: {run['shares']}")
        runs[limit] = run
    return runs


APP_LIMITED = 0x01  # TCP_INFO's flags byte: tcpi_delivery_rate_app_limited
STALLED = 0.2  # a fifth of the time or more stalled on a window or a buffer: that is the limit


def _measured(run: dict) -> dict:
    """What held the sender back: the kernel's busy time split by what stalled it (as
    shares of the transfer's time), and how often its rate samples were app-limited."""
    sender = [sample for sample in run["tcp_info"] if sample["name"] == "sender"]
    last, seconds = sender[-1], run["seconds"]
    busy = last["busy_time"] / 1e6
    rwnd, sndbuf = last["rwnd_limited"] / 1e6, last["sndbuf_limited"] / 1e6
    shares = {"cwnd": max(busy - rwnd - sndbuf, 0.0) / seconds, "rwnd": rwnd / seconds, "sndbuf": sndbuf / seconds}
    app_limited = sum(bool(sample["flags"] & APP_LIMITED) for sample in sender) / len(sender)
    if app_limited > 0.5:
        limited_by = "app"
    elif shares["rwnd"] >= STALLED or shares["sndbuf"] >= STALLED:
        limited_by = "rwnd" if shares["rwnd"] >= shares["sndbuf"] else "sndbuf"
    else:
        limited_by = "cwnd"
    return {"busy_s": busy, "rwnd_limited_s": rwnd, "sndbuf_limited_s": sndbuf, "shares": shares,
            "app_limited_samples": app_limited, "limited_by": limited_by}
