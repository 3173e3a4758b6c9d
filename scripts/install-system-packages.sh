#!/usr/bin/env bash
# Install the programs TCPChatX needs from the system's packages, if any is missing:
# tshark/dumpcap/editcap (Wireshark's command-line tools), tcpdump, nc, socat, ip, nft
# (the lab network's router drops chosen segments with nftables), and tmux (the tests
# resize the chat client in it: a terminal that re-wraps its lines, as most do).
set -euo pipefail

needed=(tshark dumpcap editcap tcpdump nc socat ip unshare nft tmux)
missing=()
for tool in "${needed[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages="tshark tcpdump netcat-openbsd socat iproute2 util-linux nftables tmux"
echo "Missing: ${missing[*]}. Installing: $packages"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=sudo
  else
    cat >&2 <<MSG
TCPChatX needs ${missing[*]}, and installing them needs root. Run once:
    sudo apt-get install -y $packages        (Debian/Ubuntu)
    brew install wireshark socat             (macOS; tcpdump and nc are built in)
    Windows: install Wireshark with Npcap ("support loopback traffic" ticked)
then run this command again. With conda: conda env create -f environment.yml
MSG
    exit 1
  fi
else
  SUDO=
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here: install Wireshark (tshark, dumpcap), tcpdump, netcat and socat yourself." >&2
  exit 1
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $packages >/dev/null
echo "Installed: $packages"
