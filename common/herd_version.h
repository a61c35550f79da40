//  herd_version.h - the version `herd --version` prints and herd_build_info reports.
//
//  The Makefile defines HERD_VERSION from `git describe --always --dirty`
//  when it builds from a git checkout; otherwise this release number.

#ifndef HERD_VERSION_H_INCLUDED
#define HERD_VERSION_H_INCLUDED

#ifndef HERD_VERSION
#   define HERD_VERSION "0.13"
#endif

#endif
