#!/bin/sh
# Run after the tc-htb test suite: fails if any network namespace the tests
# create (named tchtb-*) still exists. Deleting a namespace also deletes the
# veth pairs and qdiscs inside it, so no namespace left means nothing left.
left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep '^tchtb-')
if [ -n "$left" ]; then
    echo "tc-htb tests left namespaces behind:" >&2
    echo "$left" >&2
    echo "remove with: ip netns del NAME" >&2
    exit 1
fi
# Nothing the tests create lives in the root namespace; check anyway.
if ip link show 2>/dev/null | grep -Eq ': (va|vb)[@:]'; then
    echo "tc-htb tests left a veth (va/vb) in the root namespace" >&2
    exit 1
fi
echo "tc-htb: no namespaces, veths or qdiscs left behind"
