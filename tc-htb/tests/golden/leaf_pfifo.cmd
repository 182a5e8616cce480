tc qdisc add dev g0 parent 1:10 handle 10: pfifo limit 100
