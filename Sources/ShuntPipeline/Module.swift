// The OpenFlow-style pipeline (see Package.swift). Files: FlowSyntax, Classifier, Pipeline.
