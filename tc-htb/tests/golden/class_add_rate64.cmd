tc class add dev g0 parent 1: classid 1:30 htb rate 40gbit ceil 50gbit burst 1m cburst 1m
