module shoal.dev/shoal/examples

go 1.26.8

require shoal.dev/shoal v0.0.0

replace shoal.dev/shoal => ../
