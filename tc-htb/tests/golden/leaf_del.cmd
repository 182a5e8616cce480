tc qdisc del dev g0 parent 1:10 handle 10:
