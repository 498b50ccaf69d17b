// The control socket and its client (see Package.swift).
