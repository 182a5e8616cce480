tc class add dev g0 parent 1: classid 1:10 htb rate 50mbit ceil 100mbit burst 15k cburst 15k prio 1 quantum 1514
