tc filter add dev g0 parent 1: protocol ip prio 1 u32 match ip src 10.1.0.1/32 match ip dst 10.1.0.2/32 match ip sport 4000 0xffff match ip dport 5001 0xffff flowid 1:10
