"""What `wgslice status|tunnels|graph|diagnose|verify` gather and print (docs/cli.md)."""
