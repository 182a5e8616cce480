tc qdisc add dev g0 parent 1:20 handle 20: sfq perturb 10
