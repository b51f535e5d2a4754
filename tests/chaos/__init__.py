"""Chaos mode for the e2e suite: a fault-injecting proxy in front of the kube-apiserver
for the operator, and an operator-killer (see tests/platform/README.md, "Chaos")."""
