#!/bin/sh
# Run this when building from git: generates configure and Makefile.in.
set -e
autoreconf -i
