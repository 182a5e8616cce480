tc class change dev g0 parent 1: classid 1:10 htb rate 200mbit ceil 300mbit burst 30k cburst 30k
