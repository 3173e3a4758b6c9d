"""The lab network's stories, by name: what ``tcpchatx scenario NAME`` plays across a
router (:mod:`tcpchatx.netlab.stories`), beside the loopback close shapes of
:mod:`.catalog`.  Names and summaries only, so that every command can list them
without importing the lab."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LabStory:
    name: str
    function: str  # in tcpchatx.netlab.stories
    summary: str


LAB_STORIES = {story.name: story for story in [
    LabStory("rto", "rto", "a lone chat line lost once, resent when the retransmission timer runs out"),
    LabStory("backoff", "backoff", "the path breaks; each resend waits twice as long, then the chat resumes"),
    LabStory("fast-retransmit", "fast_retransmit",
             "one line of a burst lost: duplicate ACKs, a fast retransmission; again without SACK"),
    LabStory("reorder", "reorder", "a line arrives late, after the next one; nothing is resent"),
    LabStory("zero-window", "zero_window",
             "a client stops reading: its window closes, probes back off, the server cuts it off"),
    LabStory("bottleneck", "bottleneck",
             "a bulk transfer through a slow link and a small queue: cwnd, ssthresh, tail drops; cubic, reno, bbr"),
    LabStory("rtt", "rtt", "the same chat at 0, 50 and 200 ms: the handshake, Nagle and delayed ACKs"),
    LabStory("limits", "limits", "three transfers held back by the receiver's window, the application, "
             "and the congestion window"),
    LabStory("random-loss", "random_loss",
             "a bulk transfer across a path that loses 2% of the frames at random: every loss resent"),
]}
