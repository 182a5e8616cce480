tc qdisc del dev g0 root
