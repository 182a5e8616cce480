tc qdisc change dev g0 root handle 1: htb default 30 r2q 5
