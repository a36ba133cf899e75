//! libshunt.so: the LD_PRELOAD shim. Until its issue lands it exports no
//! hooks, so every call goes to the kernel untouched.
