#!/bin/sh
# Runs on every node before kubeadm init.
set -e
modprobe br_netfilter 2>/dev/null || true
sysctl -w net.ipv4.ip_forward=1
