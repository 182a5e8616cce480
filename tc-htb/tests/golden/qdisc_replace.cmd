tc qdisc replace dev g0 root handle 1: htb default 20 direct_qlen 64
