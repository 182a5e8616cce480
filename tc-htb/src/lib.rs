//! HTB qdiscs, classes and filters over rtnetlink (issue "tc-htb"), with class
//! statistics. Not filled yet.
