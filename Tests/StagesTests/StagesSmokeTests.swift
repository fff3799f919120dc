import Testing
@testable import Stages
