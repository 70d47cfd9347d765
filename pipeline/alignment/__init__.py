"""Align stage: FFHQ face alignment and its transform record.

``detect_faces`` (dlib) -> ``select_faces`` -> ``ffhq_quad`` -> ``align_image`` (NVIDIA's
``recreate_aligned_images``, bit-exact) -> ``AlignTransform`` (aligned <-> photo mapping).
``find_faces`` / ``align_face`` / ``AlignConfig`` wrap them for one photo.
"""

from pipeline.alignment.detect import Face, detect_faces, face_from_landmarks, select_faces
from pipeline.alignment.errors import (
    AlignGeometryError,
    FaceSelectionError,
    LandmarksFileError,
    NoFaceError,
)
from pipeline.alignment.face import AlignConfig, align_face, face_warning, find_faces
from pipeline.alignment.ffhq import align_image, ffhq_quad
from pipeline.alignment.landmark_names import LANDMARK_NAMES, landmark_index, landmark_name
from pipeline.alignment.landmarks_io import load_landmarks_json, parse_landmarks
from pipeline.alignment.transform import AlignTransform, aligned_to_photo, photo_to_aligned

__all__ = [
    "LANDMARK_NAMES",
    "AlignConfig",
    "AlignGeometryError",
    "AlignTransform",
    "Face",
    "FaceSelectionError",
    "LandmarksFileError",
    "NoFaceError",
    "align_face",
    "align_image",
    "aligned_to_photo",
    "detect_faces",
    "face_from_landmarks",
    "face_warning",
    "ffhq_quad",
    "find_faces",
    "landmark_index",
    "landmark_name",
    "load_landmarks_json",
    "parse_landmarks",
    "photo_to_aligned",
    "select_faces",
]
