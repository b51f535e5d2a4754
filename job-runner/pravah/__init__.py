"""Pravah: process large numbers of files fast, locally or on Kubernetes."""
