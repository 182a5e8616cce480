tc qdisc add dev g0 parent 1:30 handle 30: fq_codel
