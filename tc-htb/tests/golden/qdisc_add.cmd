tc qdisc add dev g0 root handle 1: htb default 10 r2q 10 direct_qlen 1000
