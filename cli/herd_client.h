//  herd_client.h - `herd client`: talk to a node from a terminal or a script.
//
//  Connects to a node's client address (HOST:PORT, or a node NAME looked up
//  in herd.cfg) and sends request lines: from the command line, from stdin
//  (pipelined; responses printed in request order, byte for byte), or from
//  an interactive prompt with line editing and history (libedit, when the
//  build has it). --iamat fills in a position and the current time;
//  --pretty re-indents WHATSAT JSON. The thin shell behind `herd client`.

#ifndef HERD_CLIENT_H_INCLUDED
#define HERD_CLIENT_H_INCLUDED

//  Run `herd client` with argv[0] = "client"; config is the file NAME is
//  looked up in unless -c names another (herd -c FILE client ...). Returns the process exit code:
//  0 when every request got its answer, 1 when the connection failed, closed
//  early or an answer timed out (the reason is printed on stderr), 2 for a
//  usage error.
int
    herd_client_main (int argc, char *argv[], const char *config);

#endif
