"""The report stage: the paper's tables (:mod:`.tables`) and figures (:mod:`.figures`) from the tidy results."""
