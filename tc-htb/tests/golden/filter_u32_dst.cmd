tc filter add dev g0 parent 1: protocol ip prio 2 u32 match ip dst 10.2.0.0/16 flowid 1:20
