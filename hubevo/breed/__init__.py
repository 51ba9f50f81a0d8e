"""Stages 4 and 5, breed: genomes and the operators that make children.

A genome is data (`genome`): a merge recipe (`MergeGenome`, `DataFlowGenome`) or a fine-tuning
recipe, with one pure function to a mergekit config. `crossover` and `mutation` are pure gene
operators over an explicit `numpy.random.Generator`; `baselines` builds the standard recipes a
practitioner tries first; `projection` reads a merged model back as per-block task arithmetic;
`materialize` is the mergekit fence: the one place a recipe becomes weights.
"""
