# Go programs are statically linked by design, as in Docker's own packages.
statically-linked-binary
# runc's Makefile keeps its symbols (no -s), and so does containerd-packaging.
unstripped-binary-or-object [usr/bin/runc]
# containerd-packaging ships these without manual pages too.
no-manual-page [usr/bin/containerd]
no-manual-page [usr/bin/containerd-shim-runc-v2]
no-manual-page [usr/bin/ctr]
no-manual-page [usr/bin/runc]
