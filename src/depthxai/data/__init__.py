"""Datasets: one on-disk layout for synthetic scenes, NYU Depth v2 and KITTI (see :mod:`depthxai.data.io`)."""
