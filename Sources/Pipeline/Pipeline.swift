import Stages
